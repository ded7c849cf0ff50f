from common.cli import main
from recipes.activity.main import cli

main(cli, prog_name="python -m recipes.activity")
