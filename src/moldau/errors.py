"""The root of Moldau's exception hierarchy."""


class MoldauError(Exception):
    """Base class of every error Moldau raises on purpose."""
