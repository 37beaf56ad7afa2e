"""The Streamlit app (app.py); start it with `docent serve` or `make run`."""
