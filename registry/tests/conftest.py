"""Registry fixtures live in the root conftest.py so every app's tests can use them."""
