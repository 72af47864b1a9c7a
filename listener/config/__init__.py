"""Configuration: TOML file -> validated, frozen settings (see ``settings``)."""

from listener.config.settings import *  # noqa: F403
