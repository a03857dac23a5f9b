"""Qt-free helpers of the RaGAN Slicer module: everything the module does that can run without a GUI.

Each function takes the MRML scene (or nodes of it) as an argument, so the same code runs in Slicer and in tests
with `slicer-core`. Where things happen:

    locations.py       where RaGANLib, the user's RaGAN folder and the trainer's Python are
    logic.py           the module's work (start the jobs, load results, export) with the trainer given as arguments
    panel.py           what the panel shows: cases table, job events -> status, progress, results to load, buttons
    panel_actions.py   what each button does (from the parameter node's values): the case list, the jobs it
                       started, their ends, and the state of the panel's widgets
    scene_files.py     reading and writing volume nodes as NRRD files; subject hierarchy placement
    training_cases.py  scene -> run folder: image + label of each case written as NRRD, and the job spec;
                       the case lists of scenes saved by an older RaGAN
    training_options.py the parameter node's values: the panel's settings, and its training options, presets and
                       their mapping, read from RaGANLib's TrainSpec
    trainer_job.py     the trainer child process: start, read its events without blocking, stop, kill
    results.py         run folder / generate output -> scene: synthetic volume + segmentation, preview, loss chart
    dataset_export.py  real and synthetic cases -> an nnU-Net v2 raw dataset
    painting.py        segmentation -> label file -> `generate --labels` -> synthetic volume on its grid (conditional)
    environment.py     what the trainer's Python has (TensorFlow, device), and installing the requirements
    demo_data.py       a phantom case put into the scene (also as a Sample Data source), for trying the module
    self_test.py       the module's self-test (RaGANTest in RaGAN.py)
"""
