from sagan.cli import main

main()
