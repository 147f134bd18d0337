"""gta.interpret"""
