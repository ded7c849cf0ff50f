from recipes.sentiment.main import run_cli

run_cli()
