"""gta.encoders"""
