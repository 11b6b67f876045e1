"""The inspection console: server-rendered pages for inspectors and authors, served by
`copytrail serve` beside the API, on the same Library calls."""
