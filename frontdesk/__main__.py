from frontdesk.app.cli import main

main()
