"""A module whose ``__all__`` is empty: test_api_documented shows such a package fails the API test."""

__all__: list[str] = []
