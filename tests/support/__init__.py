"""Helpers the tests share: made PDFs (pdfgen), a website served on 127.0.0.1 (website), an
OpenID provider (oidc_provider), the shared data folder (shared_data), free ports (net), the
`docent` command (cli), and a process killed mid-ingest (crash_child)."""
