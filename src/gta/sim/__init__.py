"""gta.sim"""
