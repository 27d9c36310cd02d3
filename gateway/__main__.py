from gateway.serving import main

main()
