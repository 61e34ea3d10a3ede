"""The example business files (installed as package data: `kolbridge demo` reads demo-garage.toml)."""
