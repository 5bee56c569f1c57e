from caracal.cli.main import main

main()
