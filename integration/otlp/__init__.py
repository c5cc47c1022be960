"""OTLP/HTTP JSON test receiver and decoder (see receiver.py, decode.py, proto/README.md)."""
