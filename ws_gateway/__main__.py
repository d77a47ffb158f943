"""`python -m ws_gateway run ...` / `python -m ws_gateway token ...`."""

from ws_gateway.cli import gateway

if __name__ == "__main__":
    gateway(prog_name="python -m ws_gateway")
