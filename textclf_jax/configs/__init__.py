"""Preset configs. Each module has `get_config() -> ml_collections.ConfigDict`."""
