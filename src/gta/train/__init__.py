"""gta.train"""
