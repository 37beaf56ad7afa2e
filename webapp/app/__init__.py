"""The Streamlit app: main.py is the script; the other modules each draw one part of the page."""
