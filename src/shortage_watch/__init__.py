"""shortage_watch: early warning of drug shortages for regional health oversight."""

__version__ = "0.1.0"
