"""``python -m lit_reg`` does what ``lit-reg`` does."""

from lit_reg.cli import cli_main

if __name__ == "__main__":
    cli_main()
