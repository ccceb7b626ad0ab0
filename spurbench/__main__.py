from spurbench.cli import main

main()
