"""The product CLI (typer): one module per noun, thin over the service facade."""
