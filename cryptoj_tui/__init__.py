"""CryptoJ's terminal UI: the Textual App, its screens and the ``cryptoj`` command line."""
