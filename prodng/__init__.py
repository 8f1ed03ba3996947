"""prodng: run services in hermetic copy-on-write chroots on Debian hosts."""

__version__ = "0.1.0"
