from roadseg.cli import main

main()
