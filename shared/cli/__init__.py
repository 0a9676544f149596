"""The command line's parts (output, the store target, the commands); `shared/__main__.py` puts them
together."""
