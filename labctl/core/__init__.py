"""What every layer shares and nothing below it: errors and exit codes, API group and labels,
durations, did-you-mean hints, typed YAML files and the one retry policy."""
