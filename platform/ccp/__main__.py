from ccp.cli import main

main()
