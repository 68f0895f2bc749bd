"""The usage service: meters tokens and cost per tenant."""
