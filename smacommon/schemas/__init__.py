"""marshmallow schemas shared by the API (validation, responses, OpenAPI)."""
