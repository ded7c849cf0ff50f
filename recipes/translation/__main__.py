from common.cli import main
from recipes.translation.main import cli

main(cli, prog_name="python -m recipes.translation")
