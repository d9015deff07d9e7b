from pycni.cli.main import main

main()
