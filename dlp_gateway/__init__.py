"""dlp-gateway: outbound-email data-loss prevention for Japanese local governments."""

__version__ = "0.1.0"
