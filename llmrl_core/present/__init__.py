"""Presentation shared by the pages and the reports: Plotly figures, token HTML, the episode
player template and escaping. Pure functions of plain data; no Streamlit, no model calls."""
