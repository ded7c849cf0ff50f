"""The check every recipe's tests make of bad input: exit status 1 and exactly one line,
"Error: ...", on the output."""


def one_line_error(result, *needles) -> str:
    """Assert that the click `result` is a one-line error containing every needle; return
    the line."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
