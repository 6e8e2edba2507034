"""The online side: load an index once, answer queries over HTTP and from the command line."""
