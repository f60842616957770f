from runq.cli.main import main

main()
