from common.cli import main
from recipes.ner.main import cli

main(cli, prog_name="python -m recipes.ner")
