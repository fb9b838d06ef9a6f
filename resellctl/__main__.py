from resellctl.cli import main

main()
