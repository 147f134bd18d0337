"""gta.features"""
