"""gta.evaluate"""
