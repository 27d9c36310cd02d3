from services.asr.serving import main

main()
