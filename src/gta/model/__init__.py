"""gta.model"""
