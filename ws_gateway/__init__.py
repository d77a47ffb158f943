"""ws_gateway package."""
