import os

# Ray reads this when imported: every Ray process started by a test binds to 127.0.0.1 only (DESIGN.md, network).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
