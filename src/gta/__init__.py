"""gta: Genetic sequence Token Alignment."""
__version__ = "0.1.0"
