from stuck.cli import main

main()
