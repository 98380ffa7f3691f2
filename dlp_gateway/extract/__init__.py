"""Turn a message or a file into text and table units with their locations."""
