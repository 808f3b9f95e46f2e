"""Config: schemas, composition with Hydra, and validation with friendly errors."""
