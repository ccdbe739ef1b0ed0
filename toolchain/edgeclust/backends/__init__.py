"""What runs on the board, one module (or package) per backend behind the Backend protocol (base.py)."""
