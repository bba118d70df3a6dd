"""The ``labctl`` command line: thin click commands over labctl's library."""
