from clm.cli import app

app()
