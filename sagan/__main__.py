from sagan.commands import main

main()
